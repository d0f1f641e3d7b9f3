"""Check the train and val splits' files once, before iteration 1 (see :mod:`mmext.datasets.preflight`)."""
from __future__ import annotations

import time

from mmengine.dist import broadcast_object_list, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmext.datasets.preflight import PreflightError, check_dataset
from mmext.registry import HOOKS


@HOOKS.register_module()
class PreflightDataCheckHook(Hook):
    """Before training starts, decode and check every image and annotation of the train and val datasets with
    the loaders' own rules (:mod:`mmext.datasets.preflight`).

    All bad files of a split are listed in one :class:`~mmext.datasets.preflight.PreflightError`. Under DDP rank
    0 scans and broadcasts the outcome, so every rank raises together and the files are read once.

    Args:
        workers: Threads for the scan (default: one per CPU).
        splits: Which of ``'train'`` and ``'val'`` to check.
    """

    priority = 'VERY_HIGH'

    def __init__(self, workers: int | None = None,
                 splits: tuple[str, ...] = ('train', 'val')) -> None:
        unknown = set(splits) - {'train', 'val'}
        if unknown:
            raise ValueError(f'PreflightDataCheckHook splits must be "train" and/or "val", got {sorted(unknown)}')
        self.workers = workers
        self.splits = tuple(splits)

    def before_train(self, runner) -> None:
        message = None
        if get_rank() == 0:
            message = self._scan(runner)
        if get_world_size() > 1:
            box = [message]
            broadcast_object_list(box, src=0)
            message = box[0]
        if message:
            raise PreflightError(message)

    def _scan(self, runner) -> str | None:
        errors = []
        for split in self.splits:
            if split == 'train':
                dataset = runner.train_dataloader.dataset
            else:
                dataloader = getattr(runner.val_loop, 'dataloader', None)  # built by Runner.train() by now
                if dataloader is None:
                    continue
                dataset = dataloader.dataset
            start = time.perf_counter()
            try:
                report = check_dataset(dataset, f'{split} split', self.workers)
            except PreflightError as e:
                errors.append(str(e))
                continue
            print_log(f'Preflight: {report.checked} {split} samples decoded and checked in '
                      f'{time.perf_counter() - start:.1f} s',
                      logger='current')
        return '\n'.join(errors) or None
