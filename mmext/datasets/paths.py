"""The files and folders a dataset config reads, so that tools can keep their outputs away from them."""
from __future__ import annotations

import os.path as osp
from collections.abc import Mapping


def dataset_inputs(dataset: Mapping | None) -> list[str]:
    """``data_root``, each ``data_prefix`` folder and ``ann_file`` of a dataset config (mmengine's wrappers, with
    ``dataset`` or ``datasets``, looked through), joined as mmengine's ``BaseDataset`` joins them."""
    if not dataset:
        return []
    if 'datasets' in dataset:
        return [p for child in dataset['datasets'] for p in dataset_inputs(child)]
    if 'dataset' in dataset:
        return dataset_inputs(dataset['dataset'])
    root = str(dataset.get('data_root') or '')
    paths = [root] if root else []
    prefixes = dataset.get('data_prefix') or {}
    for value in [*prefixes.values(), dataset.get('ann_file')]:
        if value:
            paths.append(osp.join(root, str(value)) if root and not osp.isabs(str(value)) else str(value))
    return paths
