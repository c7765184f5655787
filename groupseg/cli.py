"""What the command-line tools share, kept light so that a tool's ``--help`` answers before torch or mmengine load."""
from __future__ import annotations

import argparse


class DictAction(argparse.Action):
    """mmengine's ``DictAction`` (``key=value ...`` into a dict, as ``--cfg-options`` takes it), imported only when
    the option is given."""

    def __call__(self, parser, namespace, values, option_string=None):
        from mmengine.config import DictAction

        DictAction(self.option_strings, self.dest, nargs=self.nargs)(parser, namespace, values, option_string)
