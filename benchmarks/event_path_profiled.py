"""Runs one service module under cProfile with every thread profiled in thread CPU time (used by
``benchmarks/event_path.py --profile``; py-spy is not installed here).

    SEGUE_BENCH_PROFILE_MODULE=include.services.inventory SEGUE_BENCH_PROFILE_OUT=/tmp/inv \\
        python -m benchmarks.event_path_profiled

At exit writes ``<OUT>.prof`` (pstats), ``<OUT>.txt`` (top functions) and ``<OUT>.json``
(own CPU time per library, top functions). cProfile slows the process down: use the shares, not
the absolute times.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import runpy
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.services import ServiceProcess, service_env

PACKAGES = (
    ("sqlalchemy", "/sqlalchemy/"),
    ("psycopg", "/psycopg"),
    ("kombu", "/kombu/"),
    ("amqp (py-amqp)", "/amqp/"),
    ("pydantic", "/pydantic"),
    ("logging", "/logging/"),
    ("json", "/json/"),
    ("httpx/httpcore", "/http"),
    ("segue runtime", "/segue/bus/"),
    ("segue events", "/segue/events/"),
    ("segue other", "/segue/"),
    ("include (handlers, steps)", "/include/"),
    ("fastapi/starlette/uvicorn", "/starlette/"),
    ("threading/socket/select", "/threading.py"),
)

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()
_thread_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()
    try:
        _thread_run(self)
    finally:
        profile.disable()


def _package(filename: str, function: str) -> str:
    for name, marker in PACKAGES:
        if marker in filename:
            return name
    if filename == "~":  # builtins: C functions such as socket.recv, select, json encoding
        return f"builtin {function.split(' ')[-1].strip('<>').split('.')[-1]}"[:60]
    return "other python"


def _summary(stats: pstats.Stats) -> dict[str, Any]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    own: Counter[str] = Counter()
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        own[_package(filename, function)] += tottime
    total = sum(own.values()) or 1.0
    rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:25]
    return {
        "profiled_cpu_seconds": round(total, 2),
        "own_cpu_share_by_package": {
            name: round(value / total, 3)
            for name, value in own.most_common()
            if value / total > 0.005
        },
        "top_own_time": [
            {"function": f"{f}:{line}({fn})", "share": round(tt / total, 3), "calls": nc}
            for (f, line, fn), (_, nc, tt, _, _) in rows
        ],
    }


def main() -> None:
    module = os.environ["SEGUE_BENCH_PROFILE_MODULE"]
    out = os.environ["SEGUE_BENCH_PROFILE_OUT"]
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    main_profile = cProfile.Profile(time.thread_time)
    _profiles.append(main_profile)
    main_profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        main_profile.disable()
        stats = pstats.Stats(main_profile)
        with _lock:
            for profile in _profiles[1:]:
                stats.add(profile)
        stats.dump_stats(f"{out}.prof")
        text = io.StringIO()
        pstats.Stats(f"{out}.prof", stream=text).sort_stats("tottime").print_stats(40)
        pstats.Stats(f"{out}.prof", stream=text).sort_stats("cumulative").print_stats(60)
        with open(f"{out}.txt", "w") as handle:
            handle.write(text.getvalue())
        with open(f"{out}.json", "w") as handle:
            json.dump({"module": module, **_summary(stats)}, handle, indent=2)


if __name__ == "__main__":
    main()


@contextmanager
def profiled_services(
    modules: Mapping[str, str],
    *,
    database_url: str,
    amqp_url: str,
    gateway_url: str,
    log_dir: Path,
    extra_env: Mapping[str, str],
) -> Iterator[dict[str, ServiceProcess]]:
    """``start_services`` with every module run under this wrapper; profiles in ``log_dir``."""
    base = service_env(
        database_url=database_url, amqp_url=amqp_url, gateway_url=gateway_url, extra=extra_env
    )
    services = {
        name: ServiceProcess.of_module(
            name,
            "benchmarks.event_path_profiled",
            {
                **base,
                "SEGUE_BENCH_PROFILE_MODULE": module,
                "SEGUE_BENCH_PROFILE_OUT": str(log_dir / f"profile-{name}"),
            },
            log_dir / f"{name}.log",
        )
        for name, module in modules.items()
    }
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        yield services
    finally:
        for service in services.values():
            service.stop(timeout=60)


def read_profiles(log_dir: Path, names: Iterable[str]) -> dict[str, Any]:
    found = {}
    for name in names:
        path = log_dir / f"profile-{name}.json"
        found[name] = json.loads(path.read_text()) if path.exists() else {"missing": str(path)}
    return found
