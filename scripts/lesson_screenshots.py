#!/usr/bin/env python3
"""Screenshots of the first and last step of every lesson of ``minietcd-lab web``, for
docs/lab.md: each lesson is followed in a real browser on real clusters, as a person would.

    python3 scripts/lesson_screenshots.py [--out docs/img] [--pace teach] [--lesson ID ...]

Needs chromium and Playwright (scripts/setup.sh). Takes about ten minutes at teaching pace.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minietcd.lab.backend import load_cluster  # noqa: E402
from minietcd.lab.ports import free_ports  # noqa: E402
from minietcd.lab.state import LabState  # noqa: E402
from minietcd.lab.web.lesson_book import LESSONS  # noqa: E402
from tests.lab.web_browser import WebServer, browser, missing, run_lesson  # noqa: E402


def shrink(path: Path) -> None:
    """Re-save a screenshot with a 256-colour palette (a third of the size; Pillow comes with
    matplotlib in the dev set-up). Left as it is without Pillow."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:
        q = im.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    q.save(path, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--pace", choices=["teach", "normal"], default="teach")
    ap.add_argument("--lesson", action="append", default=[], help="only this lesson (repeatable)")
    args = ap.parse_args()
    reason = missing()
    if reason:
        print(f"lesson_screenshots: {reason}", file=sys.stderr)
        return 1
    wanted = args.lesson or [x.id for x in LESSONS]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lesson-shots-") as tmp:
        lab_dir = Path(tmp) / "lab"
        lab_dir.mkdir()
        web = WebServer(lab_dir, free_ports(1)[0], ["--lesson-pace", args.pace])
        failed = []
        try:
            with browser() as b:
                page = b.new_page(viewport={"width": 1280, "height": 1060})
                page.goto(web.url)
                for lesson in wanted:
                    ended = run_lesson(page, lesson, shots=args.out)
                    for which in ("first", "last"):
                        shrink(args.out / f"lesson-{lesson}-{which}.png")
                    print(f"{lesson}: {' '.join(ended)}", flush=True)
                    if ended[-1] != "finished" or any(e != "done" for e in ended[:-1]):
                        failed.append(lesson)
        finally:
            web.stop()
            if LabState.exists(lab_dir):
                load_cluster(lab_dir).down()
    for lesson in failed:
        print(f"lesson_screenshots: {lesson} did not go as planned", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
