"""``segue compare``: the article's scenario run on each path of this machine, and its report."""
