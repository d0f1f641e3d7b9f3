"""Multi-process training and testing on CPU (gloo), which mmengine 0.10.7 does not support out of the box.

Three things break a ``torchrun --nproc_per_node N tools/train.py ... --launcher pytorch`` run without CUDA:
mmengine's ``init_dist`` calls ``torch.cuda.set_device`` ("Found no NVIDIA driver"), the Runner wraps the model
in DDP with ``device_ids=[LOCAL_RANK]``, which DDP rejects for a CPU module, and SyncBN has no CPU kernel.
:func:`setup_cpu_distributed` fixes all three on the config before the Runner is built: it initialises the gloo
process group itself (the Runner then skips its own init), asks for a DDP wrapper without ``device_ids`` and turns
SyncBN norm configs into BN.
"""
from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import get_world_size
from mmengine.logging import print_log

SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'nn.SyncBatchNorm', 'SyncBatchNorm')


def replace_sync_bn(node: Any) -> int:
    """Turn every ``dict(type=<SyncBN>)`` inside ``node`` into ``type='BN'`` in place; return how many changed."""
    changed = 0
    if isinstance(node, dict):
        if node.get('type') in SYNC_BN_TYPES:
            node['type'] = 'BN'
            changed += 1
        for value in node.values():
            changed += replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            changed += replace_sync_bn(value)
    return changed


def setup_cpu_distributed(cfg: Config) -> bool:
    """Prepare ``cfg`` for a multi-process run on CPU; no-op for ``launcher='none'`` or when CUDA is available.

    Initialises the gloo process group from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``), sets ``env_cfg.dist_cfg.backend='gloo'``, sets ``model_wrapper_cfg.device_ids=None`` and
    replaces SyncBN by BN in ``cfg.model`` (with a warning: each process then normalises over its own batch).

    Returns:
        True if ``cfg`` was changed for CPU multi-process use.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(f'multi-process runs without CUDA support launcher="pytorch" (torchrun) only, got '
                           f'launcher={launcher!r}; use tools/dist_train.sh or torchrun')
    missing = [key for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if key not in os.environ]
    if missing:
        raise RuntimeError(f'launcher="pytorch" needs the environment variables torchrun sets; missing {missing}')

    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        kwargs = {}
        if dist_cfg.get('timeout') is not None:
            kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
        torch_dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                      world_size=int(os.environ['WORLD_SIZE']), **kwargs)

    wrapper_cfg = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'))
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg

    converted = replace_sync_bn(cfg.model)
    if cfg.get('sync_bn') is not None:
        cfg.sync_bn = None  # the Runner would convert BN back to SyncBN
        converted += 1
    if converted:
        print_log(f'SyncBN has no CPU implementation: {converted} SyncBN setting(s) replaced by BN for this '
                  f'{os.environ["WORLD_SIZE"]}-process CPU run; each process normalises over its own batch.',
                  logger='current', level=logging.WARNING)
    return True


def any_rank(flag: bool) -> bool:
    """``flag`` OR-ed over all ranks (one scalar ``all_reduce``); ``flag`` itself when not distributed."""
    if get_world_size() == 1 or not torch_dist.is_initialized():
        return flag
    backend = torch_dist.get_backend()
    device = torch.device('cuda', torch.cuda.current_device()) if backend == 'nccl' else torch.device('cpu')
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    torch_dist.all_reduce(value, op=torch_dist.ReduceOp.MAX)
    return bool(value.item())
