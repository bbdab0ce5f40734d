"""One timeline per subject (an order): entries from several sources, merged by time."""
