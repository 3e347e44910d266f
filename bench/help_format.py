"""The help formatter of bench's commands."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, where it says something: not "(default: None)",
    nor "(default: False)" after a flag."""

    def _get_help_string(self, action):
        if action.default is None or action.nargs == 0:  # no default, or a flag
            return action.help
        return super()._get_help_string(action)
