"""Paths the tests share: the repository root and the fixture folder."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
CONFIGS = os.path.join(ROOT, "configs")
