"""make screenshots: draws every page in headless chromium into artifacts/ (and the README's image).

Uses DATABASE_URL when set, else the embedded server in .data/pg (seeded by `make run`).
"""
from __future__ import annotations

import argparse
import shutil

from data.db import database_url
from scripts.browser import ROOT, chromium, streamlit_app, wait_for_overview

PAGES = {"overview": ("/", wait_for_overview)}


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.screenshots")
    p.add_argument("--readme", action="store_true", help="also copy the overview to docs/img/")
    p.add_argument("--width", type=int, default=1440)
    p.add_argument("--height", type=int, default=2300)
    args = p.parse_args()
    out = ROOT / "artifacts"
    out.mkdir(exist_ok=True)
    url = database_url()  # holds the embedded server while the app runs
    with streamlit_app({"DATABASE_URL": url}, out / "streamlit.log") as (base, _), chromium() as browser:
        for name, (path, ready) in PAGES.items():
            # Streamlit scrolls inside its own container, so a tall viewport shows the whole page.
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(base + path, wait_until="domcontentloaded")
            ready(page)
            page.wait_for_timeout(2000)  # plotly finishes its transitions
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(f"artifacts/{name}.png")
            page.close()
    if args.readme:
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "overview.png", ROOT / "docs" / "img" / "overview.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
