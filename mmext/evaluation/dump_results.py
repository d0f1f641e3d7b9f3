"""mmengine's ``DumpResults`` with the pickle written under a temporary name and renamed when complete."""
from __future__ import annotations

from mmengine.evaluator import DumpResults
from mmengine.fileio import dump
from mmengine.logging import print_log

from mmext.fileio import atomic_path
from mmext.registry import METRICS


@METRICS.register_module()
class AtomicDumpResults(DumpResults):
    """:class:`mmengine.evaluator.DumpResults` (same arguments) whose file is complete or absent, never half
    written (``tools/test.py --out FILE.pkl``)."""

    def compute_metrics(self, results: list) -> dict:
        with atomic_path(self.out_file_path) as temporary:
            dump(results, str(temporary))
        print_log(f'Results has been saved to {self.out_file_path}.', logger='current')
        return {}
