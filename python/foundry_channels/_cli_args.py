"""argparse argument types shared by the CLI's commands."""

from __future__ import annotations

import argparse


def int_in(lo: int, hi: int):
    """An argparse type: an integer in lo..hi (the message states the range it checks)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    return parse
