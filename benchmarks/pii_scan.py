"""PII scan throughput: finetrail's scan against Presidio's BatchAnalyzerEngine, side by side.

Both run the same analyzer (no_op NLP engine, Presidio's predefined recognisers, the offline
email check and finetrail's name-list recogniser) on the same synthetic records (Faker), and
their findings are asserted identical, text by text. finetrail adds the per-recogniser
pre-filter and worker processes (default 2); the baseline is ``BatchAnalyzerEngine
.analyze_iterator`` in one process. The records are scanned in chunks; each chunk is timed on
both paths, back to back (alternating which goes first), and the reported ratio is the median
of the per-chunk ratios. Engine construction and worker start-up are timed separately.

    python benchmarks/pii_scan.py            # 20,000 records
    python benchmarks/pii_scan.py --quick    # 2,000 records
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import sys
import time
from typing import Any


def make_records(n: int, seed: int = 7) -> list[dict[str, str]]:
    """Support-chat records: ~35% of prompts carry PII of one or two kinds; replies rarely do."""
    from faker import Faker

    fk = Faker("en_US")
    Faker.seed(seed)
    rnd = random.Random(seed)
    pii = [
        lambda: f"Hi, this is {fk.name()}. Email me at {fk.email()} or call {fk.phone_number()}.",
        lambda: (
            f"My card {fk.credit_card_number()} was charged twice on {fk.date()}. {fk.sentence()}"
        ),
        lambda: f"For verification my SSN is {fk.ssn()}. {fk.sentence()}",
        lambda: f"I logged in from {fk.ipv4()} and the page {fk.url()} failed. {fk.sentence()}",
        lambda: f"Please refund to IBAN {fk.iban()}. {fk.sentence()}",
        lambda: f"Ship it to {fk.address().replace(chr(10), ', ')}, attention {fk.name()}.",
        lambda: f"Dr. {fk.last_name()} referred me; my number is {fk.phone_number()}.",
    ]
    plain = [
        lambda: fk.paragraph(nb_sentences=3),
        lambda: fk.sentence(nb_words=12),
        lambda: f"How do I {fk.bs()}? {fk.sentence()}",
        lambda: f"Order {rnd.randint(1000, 99999)} has not arrived yet. {fk.sentence()}",
    ]
    records = []
    for _ in range(n):
        prompt = rnd.choice(pii)() if rnd.random() < 0.35 else rnd.choice(plain)()
        reply = fk.paragraph(nb_sentences=2)
        if rnd.random() < 0.05:
            reply = f"Thanks {fk.first_name()} {fk.last_name()}, we will write to {fk.email()}."
        records.append({"prompt": prompt, "completion": reply})
    return records


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{model}, {cpus} CPUs available, load average {load:.2f}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 records instead of 20,000")
    ap.add_argument("--records", type=int, help="number of records (overrides --quick)")
    ap.add_argument("--chunks", type=int, default=10, help="chunks timed back to back")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    n = args.records or (2_000 if args.quick else 20_000)

    import importlib.metadata

    from finetrail.governance.pii.config import ScanConfig
    from finetrail.governance.pii.scan import engine_module, open_scanner

    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    records = make_records(n)
    texts = [t for r in records for t in (r["prompt"], r["completion"])]
    print(
        f"data: {n:,} synthetic records (Faker), {len(texts):,} texts, "
        f"{sum(map(len, texts)) / 1e6:.1f} M characters (made in {time.perf_counter() - t0:.1f} s)"
    )

    config = ScanConfig(workers=args.workers)
    t0 = time.perf_counter()
    mod = engine_module(config)
    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    scanner = open_scanner(config)
    t_start = time.perf_counter() - t0
    from presidio_analyzer import BatchAnalyzerEngine

    baseline_engine = mod.build_engine(config)
    baseline_engine.warm_up()
    batch = BatchAnalyzerEngine(analyzer_engine=baseline_engine.analyzer)
    print(
        f"presidio-analyzer {importlib.metadata.version('presidio-analyzer')}; import {t_import:.1f} s "
        f"(torch/transformers kept out: {'torch' not in sys.modules}); engine + {args.workers} "
        f"workers started in {t_start:.1f} s"
    )

    import psutil

    me = psutil.Process()

    def cpu_seconds() -> float:
        """CPU time of this process and its live children (the scan workers)."""
        total = sum(me.cpu_times()[:2])
        for child in me.children():
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total

    cpu = {"baseline": 0.0, "finetrail": 0.0}

    def run_baseline(chunk: list[str]) -> tuple[float, list[Any]]:
        c = cpu_seconds()
        t = time.perf_counter()
        res = batch.analyze_iterator(chunk, language="en", score_threshold=config.score_threshold)
        dt = time.perf_counter() - t
        cpu["baseline"] += cpu_seconds() - c
        return dt, [[(r.entity_type, r.start, r.end, r.score) for r in rs] for rs in res]

    def run_ours(chunk: list[str]) -> tuple[float, list[Any]]:
        c = cpu_seconds()
        t = time.perf_counter()
        res = scanner.map_texts(chunk)
        dt = time.perf_counter() - t
        cpu["finetrail"] += cpu_seconds() - c
        return dt, res

    size = max(1, len(texts) // args.chunks)
    ratios: list[float] = []
    tot_base = tot_ours = 0.0
    findings = 0
    skipped = sum(1 for t in texts if baseline_engine.entities_to_run(t) == [])
    try:
        for i, start in enumerate(range(0, len(texts), size)):
            chunk = texts[start : start + size]
            if i % 2 == 0:
                tb, base = run_baseline(chunk)
                to, ours = run_ours(chunk)
            else:
                to, ours = run_ours(chunk)
                tb, base = run_baseline(chunk)
            if base != ours:
                bad = next(j for j in range(len(chunk)) if base[j] != ours[j])
                raise SystemExit(
                    f"findings differ at text {start + bad}: {base[bad]} != {ours[bad]}"
                )
            findings += sum(map(len, base))
            ratios.append(tb / to)
            tot_base += tb
            tot_ours += to
            print(
                f"  chunk {i + 1}: {len(chunk):,} texts  baseline {len(chunk) / tb:7.0f} texts/s  "
                f"finetrail {len(chunk) / to:7.0f} texts/s  ratio {tb / to:5.2f}"
            )
    finally:
        scanner.close()
    print(f"findings: {findings:,}, identical on both paths for all {len(texts):,} texts")
    print(
        f"pre-filter: {skipped:,} of {len(texts):,} texts ({skipped / len(texts):.0%}) need no recogniser"
    )
    print(
        f"throughput: baseline {len(texts) / tot_base:,.0f} texts/s, finetrail "
        f"{len(texts) / tot_ours:,.0f} texts/s ({n / tot_ours:,.0f} records/s)"
    )
    print(
        f"speed-up (median of {len(ratios)} paired chunk ratios): {statistics.median(ratios):.2f}x "
        f"(target >= 3x); total-time ratio {tot_base / tot_ours:.2f}x"
    )
    print(
        f"CPU: baseline {cpu['baseline']:.1f} s, finetrail {cpu['finetrail']:.1f} s (all processes): "
        f"{cpu['baseline'] / cpu['finetrail']:.2f}x less CPU per text; finetrail's processes got "
        f"{cpu['finetrail'] / tot_ours:.2f} cores on average ({args.workers} workers), "
        f"the baseline {cpu['baseline'] / tot_base:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
