"""One-off: the paper record's training history, recovered from the committed report's Sections F and G.

The record published before its metadata kept the runner's timings.json; the committed report.html still shows
them (Section F: the wall time per stage and the invocations; Section G: each executed notebook), rendered from
that file with the seconds rounded. This writes them back as a timings.json (seconds as shown), then republishes
the record from a store seeded from it (nothing retrained), its plan and that history:

    PYTHONPATH=. .venv/bin/python docs/measurements/recover_timings.py report/paper [runs/paper/verify/verify.json]

(with the second argument, the last `make verify` of the record is kept in it too: Section E shows it).

records.parquet (+ pairs.parquet) and their checksums in that folder are rewritten; the runs are the record's.
"""

from __future__ import annotations

import html
import json
import re
import sys
import tempfile
from pathlib import Path

from siamese_lib.experiments.profiles import load_profile
from siamese_lib.pipeline import published


def rows(section: str) -> list[list[str]]:
    cells = (
        re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)
        for r in re.findall(r"<tr>(.*?)</tr>", section, re.S)
    )
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in row] for row in cells]


def seconds(text: str) -> float:
    return float(re.match(r"([\d.]+) s", text).group(1))


def recover(report_html: str) -> dict:
    f = report_html[report_html.index('id="wall-time"') : report_html.index('id="notebooks"')]
    g = report_html[report_html.index('id="notebooks"') : report_html.index('id="profile"')]
    caption = re.search(r"Wall time per stage: profile (\S+), (\d+) jobs, device (\S+), (\S+) to (\S+?)<", f)
    profile, jobs, device, started, finished = caption.groups()
    stages, total, invocations = {}, None, []
    for row in rows(f):
        if len(row) == 2 and row[0].startswith("total:"):
            total = seconds(row[1])
        elif len(row) == 2 and row[0] != "Stage":
            stages[row[0]] = seconds(row[1])
        elif len(row) == 6 and row[0]:
            cpu, cores = re.match(r"(.*) \((\d+) cores\)", row[4]).groups()
            status = "running" if row[2].startswith("running") else row[2]
            invocations.append(
                dict(
                    started=row[1],
                    status=status,
                    trained=int(row[3]),
                    cpu=cpu,
                    cores=int(cores),
                    seconds=seconds(row[5]),
                )
            )
    executions = [
        dict(
            stage=r[0],
            name=Path(r[1]).stem,
            notebook=r[1],
            status=r[2],
            seconds=float(r[3]),
            runs=int(r[4]),
            trained=int(r[5]),
            cached=int(r[6]),
        )
        for r in rows(g)
        if len(r) == 7 and r[0] != "Stage"
    ]
    return dict(
        profile=profile,
        jobs=int(jobs),
        device=device,
        started=started,
        finished=finished,
        status=invocations[-1]["status"],
        total_seconds=total,
        stages=stages,
        invocations=invocations,
        executions=executions,
        recovered_from="the committed report.html, Sections F and G",
    )


def main(report_dir: str, verify_json: str | None = None) -> None:
    report_dir = Path(report_dir)
    path = published.record_file(report_dir)
    meta = published.read_metadata(path)
    timings = recover((report_dir / "report.html").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "timings.json").write_text(json.dumps(timings))
        if verify_json:  # the last `make verify` of this record (runs/paper/verify/verify.json), kept with it
            (tmp / "verify").mkdir()
            (tmp / "verify" / "verify.json").write_text(Path(verify_json).read_text())
        (tmp / "plan.json").write_text(meta["plan"])
        (tmp / f"{meta['profile']}.yaml").write_text(meta["profile_yaml"])
        published.seed_store(path, tmp / "store")
        profile = load_profile(str(tmp / f"{meta['profile']}.yaml"))
        published.publish_record(tmp / "store", report_dir, profile, tmp / "plan.json", tmp)
    print(
        f"{path}: republished with {len(timings['invocations'])} invocations, {len(timings['executions'])} notebooks"
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
