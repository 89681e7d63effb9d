"""Dataset hashing throughput: file SHA-256 plus RFC 6962 Merkle root, against plain hashlib.

For JSONL files of several record sizes, each repetition times, back to back (alternating
which goes first), (a) ``hashlib.sha256`` over the file read in 4 MiB chunks and (b)
finetrail's ``digest_line_file`` (the same file SHA-256, in a background thread, plus every
record's leaf hash and the Merkle root). The reported ratio is throughput(b) / throughput(a),
the median over repetitions. Context lines: full registration (JSON validation, schema, leaf
file) and, with ``--rss-gb``, the peak memory of registering a file of that size.

    python benchmarks/dataset_hashing.py            # 256 MiB per record size
    python benchmarks/dataset_hashing.py --quick    # 32 MiB per record size
    python benchmarks/dataset_hashing.py --rss-gb 1 # also: register a 1 GiB file, peak RSS
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


def make_file(path: Path, record_bytes: int, total_bytes: int) -> int:
    """A JSONL file of ~``record_bytes`` records, ~``total_bytes`` long; returns the record count."""
    words = (
        "order",
        "refund",
        "account",
        "please",
        "thanks",
        "delivery",
        "invoice",
        "the",
        "a",
        "is",
    )
    body = " ".join(words[i % len(words)] for i in range(record_bytes // 6))
    n = 0
    with open(path, "wb") as fh:
        block: list[bytes] = []
        size = 0
        while size < total_bytes:
            line = json.dumps(
                {"id": n, "prompt": body[: len(body) // 2], "completion": body[len(body) // 2 :]}
            )
            data = line.encode() + b"\n"
            block.append(data)
            size += len(data)
            n += 1
            if len(block) >= 4096:
                fh.write(b"".join(block))
                block = []
        fh.write(b"".join(block))
    return n


def plain_sha256(path: Path) -> float:
    t = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(4 << 20):
            h.update(chunk)
    h.hexdigest()
    return time.perf_counter() - t


def ours(path: Path) -> float:
    from finetrail.governance.provenance.hashing import digest_line_file

    t = time.perf_counter()
    digest_line_file(path)
    return time.perf_counter() - t


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
        model = next(
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("model name")
        )
        model += " (SHA-NI)" if " sha_ni" in text else " (no SHA-NI)"
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {cpus} CPUs available, load average {load:.2f}, Python {platform.python_version()}"


def register_rss(path: Path, tmp: Path) -> tuple[float, int, int]:
    """(seconds, peak RSS MiB, records) of `finetrail data register` (no scan) in a subprocess."""
    ws = Path(tempfile.mkdtemp(prefix="ws-", dir=tmp)) / "ws"
    code = textwrap.dedent(f"""
        import contextlib, io, json, time
        def peak_rss_mb():  # VmHWM: this process image only (ru_maxrss counts the parent's too)
            with open("/proc/self/status") as fh:
                return int(fh.read().split("VmHWM:")[1].split()[0]) // 1024
        from finetrail.cli import main
        from finetrail.governance.provenance import list_datasets
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["init", {str(ws)!r}, "--model", "m", "--version", "1", "--owner", "o"]) == 0
            t = time.perf_counter()
            assert main(["data", "register", {str(path)!r}, "-w", {str(ws)!r}, "--name", "big", "--source", "s",
                         "--license", "MIT", "--collection", "c", "--legal-basis", "b", "--purpose", "p"]) == 0
            dt = time.perf_counter() - t
        n = list_datasets(workspace={str(ws)!r})[0].records
        print(json.dumps([dt, peak_rss_mb(), n]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"registration failed:\n{out.stderr}")
    dt, rss, n = json.loads(out.stdout.strip().splitlines()[-1])
    return float(dt), int(rss), int(n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="32 MiB files, 3 repetitions")
    ap.add_argument("--mb", type=int, help="file size per record size in MiB")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--sizes", default="256,1024,4096,16384", help="record sizes in bytes")
    ap.add_argument(
        "--rss-gb", type=float, default=0.0, help="also register a file this large (GiB)"
    )
    args = ap.parse_args(argv)
    mb = args.mb or (32 if args.quick else 256)
    reps = args.reps or (3 if args.quick else 5)
    print(f"machine: {machine()}")
    print(f"files: {mb} MiB of JSONL per record size; {reps} interleaved repetitions")
    with tempfile.TemporaryDirectory(prefix="finetrail-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for size in (int(s) for s in args.sizes.split(",")):
            path = tmp / f"r{size}.jsonl"
            n = make_file(path, size, mb << 20)
            nbytes = path.stat().st_size
            plain_sha256(path)
            ours(path)  # warm the page cache and imports
            ratios, t_plain, t_ours = [], [], []
            for i in range(reps):
                if i % 2 == 0:
                    a, b = plain_sha256(path), ours(path)
                else:
                    b, a = ours(path), plain_sha256(path)
                ratios.append(a / b)
                t_plain.append(a)
                t_ours.append(b)
            print(
                f"  records ~{size:>6} B ({n:>9,} records): hashlib {nbytes / statistics.median(t_plain) / 1e6:6.0f} MB/s"
                f"  sha256+merkle {nbytes / statistics.median(t_ours) / 1e6:6.0f} MB/s"
                f"  ({n / statistics.median(t_ours) / 1e6:.2f} M records/s)"
                f"  ratio {statistics.median(ratios):.2f} (target >= 0.7)"
            )
            if size == 1024:
                dt, rss, _ = register_rss(path, tmp)
                print(
                    f"    full registration (JSON validation, schema, leaf file) of this file: "
                    f"{nbytes / dt / 1e6:.0f} MB/s, peak RSS {rss} MiB"
                )
            path.unlink()
        if args.rss_gb:
            path = tmp / "big.jsonl"
            n = make_file(path, 1024, int(args.rss_gb * (1 << 30)))
            dt, rss, got = register_rss(path, tmp)
            print(
                f"register {path.stat().st_size / (1 << 30):.2f} GiB ({got:,} records): {dt:.1f} s, "
                f"peak RSS {rss} MiB (target < 200 MiB)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
