"""Start-up cost: ``import zoo`` / ``zoo list`` versus ``import timm`` / ``timm.list_models()``.

Every command runs as a fresh subprocess (so nothing is cached in this process), peer and zoo
alternating within each round, one warm-up round first (not counted; it fills the OS file cache
and writes .pyc files). Printed: a markdown table of median and min wall time, the ratio
timm / zoo of the medians for each pair, and whether torch ended up in ``sys.modules``
(``import zoo`` and ``zoo.list_models()`` must not import torch; timm always does).

Pairs compared:

    import timm                            vs  import zoo
    import timm; timm.list_models()        vs  import zoo; zoo.list_models()
    import timm; timm.list_models()        vs  zoo list          (the console script)

Also timed, on the zoo side: ``python -c pass`` (the interpreter's own start-up, the floor) and
``zoo list`` with ``ZOO_NO_CATALOG_CACHE=1`` (every catalog file parsed and validated, as on the
first run after an install or an edit), against the target: ``zoo list`` under 0.1 s. With
``--no-timm`` only the zoo side runs (no timm venv needed):

    .venv/bin/python bench/bench_import.py --no-timm --rounds 20

Set-up, from the repository root. timm lives only in the bench environment: it pulls its own
multi-GB torch build (about 5.5 GB with the CUDA wheels), so it gets a venv of its own, beside
the checkout (measured with timm 1.0.31, torch 2.14.1, torchvision 0.29.1):

    python3 -m venv ../bench-venv-timm
    ../bench-venv-timm/bin/pip install torch==2.14.1 torchvision==0.29.1 timm

The zoo side is the project's own environment; an editable install gives ``import zoo`` and the
``zoo`` console script:

    python3 -m venv ../venv
    ../venv/bin/pip install -e .            # plus any plugins: pip install -e plugins/zoo-x

Run, with the zoo environment's python:

    ../venv/bin/python bench/bench_import.py                      # 10 rounds, 1 warm-up
    ../venv/bin/python bench/bench_import.py --rounds 20 --timm-python ../bench-venv-timm/bin/python

Defaults: ``--zoo-python`` is $ZOO_BENCH_ZOO_PYTHON, else the python running this script;
``--timm-python`` is $ZOO_BENCH_TIMM_PYTHON, else ``../bench-venv-timm/bin/python`` beside the
checkout. The ``zoo`` console script is looked up beside ``--zoo-python``; when it is missing
or ``zoo list`` fails, that row is reported as unavailable and the rest still runs.
Timings are wall clock on a possibly busy machine: report what else was running.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TIMM_PYTHON = REPO.parent / "bench-venv-timm" / "bin" / "python"


@dataclass(eq=False)
class Command:
    """One timed command: a label for the table and the argv to run."""

    label: str
    side: str  # "timm" or "zoo"
    argv: list[str]
    times: list[float] = field(default_factory=list)
    cpu_times: list[float] = field(default_factory=list)  # user + system CPU of the subprocess
    torch_imported: bool | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_times)


def _env() -> dict[str, str]:
    """The caller's environment without anything that would change what gets imported or printed."""
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP", "PYTHONVERBOSE"):
        env.pop(key, None)
    return env


def run_once(argv: list[str], cwd: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one subprocess, in seconds; raise with its stderr
    when it fails. CPU time moves much less than wall time on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env={**_env(), **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"{' '.join(argv)!r} exited {proc.returncode}:\n{tail}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imports_torch(argv: list[str], cwd: str) -> bool:
    """Whether the command imports torch, read from ``python -X importtime`` (run once, untimed).

    ``argv`` starts with a python, followed by ``-c CODE`` or a script path (the console script),
    so inserting ``-X importtime`` after the interpreter covers both.
    """
    traced = [argv[0], "-X", "importtime", *argv[1:]]
    proc = subprocess.run(traced, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(traced)!r} exited {proc.returncode}")
    for line in proc.stderr.decode(errors="replace").splitlines():
        # "import time:   self [us] |  cumulative | imported package"
        if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == "torch":
            return True
    return False


def version_of(python: str, module: str, cwd: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    proc = subprocess.run([python, "-c", code], cwd=cwd, env=_env(), capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--zoo-python",
        default=os.environ.get("ZOO_BENCH_ZOO_PYTHON", sys.executable),
        help="python of the environment with zoo-core installed (default: $ZOO_BENCH_ZOO_PYTHON or this python)",
    )
    parser.add_argument(
        "--timm-python",
        default=os.environ.get("ZOO_BENCH_TIMM_PYTHON", str(DEFAULT_TIMM_PYTHON)),
        help=f"python of the venv with timm installed (default: $ZOO_BENCH_TIMM_PYTHON or {DEFAULT_TIMM_PYTHON})",
    )
    parser.add_argument("--no-timm", action="store_true", help="time the zoo side only (no timm venv needed)")
    parser.add_argument("--target", type=float, default=0.1, help="seconds `zoo list` must stay under (default 0.1)")
    parser.add_argument("--rounds", type=int, default=10, help="timed runs of each command (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error(f"--rounds must be >= 1 and --warmup >= 0, got {args.rounds} and {args.warmup}")

    # Do not resolve symlinks: a venv's bin/python is a link, and resolving it leaves the venv.
    zoo_python, timm_python = Path(args.zoo_python).absolute(), Path(args.timm_python).absolute()
    for name, python in (("--zoo-python", zoo_python), ("--timm-python", timm_python)):
        if name == "--timm-python" and args.no_timm:
            continue
        if not python.exists():
            parser.error(f"{name} {python} does not exist (see the set-up commands in {Path(__file__).name})")
    zoo_script = zoo_python.parent / "zoo"

    # A scratch working directory, so that `-c` code imports the installed packages, never a
    # folder of the same name in the current directory.
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as cwd:
        pairs = [
            (Command("import timm", "timm", [str(timm_python), "-c", "import timm"]),
             Command("import zoo", "zoo", [str(zoo_python), "-c", "import zoo"])),
            (Command("import timm; timm.list_models()", "timm",
                     [str(timm_python), "-c", "import timm; timm.list_models()"]),
             Command("import zoo; zoo.list_models()", "zoo",
                     [str(zoo_python), "-c", "import zoo; zoo.list_models()"])),
        ]
        cli = Command("zoo list", "zoo", [str(zoo_python), str(zoo_script), "list"])
        unavailable = ""
        try:
            if not zoo_script.exists():
                raise RuntimeError(f"no console script at {zoo_script}")
            run_once(cli.argv, cwd)
        except RuntimeError as error:
            unavailable = str(error).strip().splitlines()[-1]
        else:
            pairs.append((pairs[1][0], cli))
        floor = Command("python -c pass", "zoo", [str(zoo_python), "-c", "pass"])
        # The first run after an install or an edit: no listing snapshot, every catalog file validated.
        uncached = Command("zoo list (ZOO_NO_CATALOG_CACHE=1)", "zoo", cli.argv, env={"ZOO_NO_CATALOG_CACHE": "1"})
        extra = [floor] + ([uncached] if not unavailable else [])
        if args.no_timm:
            pairs = []
        commands = list(dict.fromkeys([*(c for pair in pairs for c in pair), *([] if pairs else
                                       [c for c in (Command("import zoo", "zoo", [str(zoo_python), "-c", "import zoo"]),
                                                    cli) if c is not cli or not unavailable]), *extra]))
        for command in commands:
            try:
                command.torch_imported = imports_torch(command.argv, cwd)
            except RuntimeError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1

        for round_index in range(args.warmup + args.rounds):
            # Alternate which side goes first each round, so neither always runs on a warmer cache.
            order = commands if round_index % 2 == 0 else commands[::-1]
            for command in order:
                elapsed, cpu = run_once(command.argv, cwd, command.env)
                if round_index >= args.warmup:
                    command.times.append(elapsed)
                    command.cpu_times.append(cpu)

        versions = {} if args.no_timm else {
            "timm": version_of(str(timm_python), "timm", cwd),
            "torch (timm venv)": version_of(str(timm_python), "torch", cwd),
        }
        versions.update({"zoo-core": version_of(str(zoo_python), "zoo-core", cwd),
                         "torch (zoo venv)": version_of(str(zoo_python), "torch", cwd)})
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"rounds: {args.rounds} (+{args.warmup} warm-up), peer and zoo alternating; cpus: {os.cpu_count()}; "
          f"load average at the end: {load:.2f}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"timm python: {timm_python}\nzoo python:  {zoo_python}\n")
    print("| command | median s | min s | median CPU s | imports torch |")
    print("| --- | ---: | ---: | ---: | --- |")
    for command in commands:
        torch_flag = "yes" if command.torch_imported else "no"
        print(f"| `{command.label}` | {command.median:.3f} | {command.best:.3f} | {command.cpu:.3f} | {torch_flag} |")
    if unavailable:
        print(f"| `zoo list` | unavailable: {unavailable} | | |")
    if pairs:
        print()
        print("| timm | zoo | ratio timm / zoo (median) | ratio (min) |")
        print("| --- | --- | ---: | ---: |")
        for peer, zoo in pairs:
            print(f"| `{peer.label}` | `{zoo.label}` | {peer.median / zoo.median:.1f}x | {peer.best / zoo.best:.1f}x |")
    if not unavailable:
        verdict = "under" if cli.median < args.target else "NOT under"
        print(f"\n`zoo list`: median {cli.median:.3f} s wall ({cli.cpu:.3f} s CPU), {verdict} the {args.target} s "
              f"target (interpreter start-up alone: {floor.median:.3f} s; uncached catalog: {uncached.median:.3f} s)")

    leaks = [c.label for c in commands if c.side == "zoo" and c.torch_imported]
    if leaks:
        print(f"\nFAIL: torch was imported by: {', '.join(leaks)} (importing zoo must stay torch-free)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
