"""Command line: python -m data migrate | seed | load | url | create-user."""
from data.cli import main

raise SystemExit(main())
