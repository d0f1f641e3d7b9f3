"""Where mmext's components enter OpenMMLab's registries.

Components are registered in mmengine's root registries. Every downstream scope (``mmseg``, ``mmdet``, ...)
falls back to its root when a name is not its own, so one registration makes ``type='InceptionNeXt'`` build under
whichever default scope a config sets, once ``mmext`` is imported (``custom_imports=dict(imports=['mmext'])``).

:data:`TOKEN_MIXERS` holds the spatial operators of MetaNeXt blocks (``arch['token_mixer']=dict(type=...)``). It
is a child of the root ``MODELS``: a name not found in it is looked up in ``MODELS``, and another package adds a
mixer with ``@TOKEN_MIXERS.register_module()`` (``from mmext.registry import TOKEN_MIXERS``) or in a child registry
of its own (``Registry('token mixer', parent=TOKEN_MIXERS, scope='mypkg')``, then ``type='mypkg.MyMixer'``).

Components that subclass mmseg's (dataset, loading transforms, metric) are registered on first use instead, so that
``import mmext`` imports no more than torch, mmengine and mmcv: :data:`LAZY_LOCATIONS` are imported by the root
registry and its ``mmseg``/``mmdet`` children the first time each looks a name up (mmengine's ``locations``), e.g.
when a Runner builds ``dict(type='CheckedADE20KDataset')``. Importing the module (``from mmext.datasets import
CheckedADE20KDataset``) registers them too.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect

from mmengine.registry import (
    DATASETS,
    HOOKS,
    METRICS,
    MODELS,
    OPTIM_WRAPPER_CONSTRUCTORS,
    RUNNERS,
    TRANSFORMS,
    Registry,
)

from mmext.compat.upstream import add_registry_locations

__all__ = ['DATASETS', 'HOOKS', 'METRICS', 'MODELS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'RUNNERS', 'TOKEN_MIXERS',
           'TRANSFORMS']


def _build_token_mixer(cfg: dict, registry: Registry, in_channels: int) -> object:
    """``cfg['type'](in_channels, **rest)``, looked up in ``registry`` and its ancestors whatever the default scope
    (mmengine's ``build_from_cfg`` would switch to the scope's own ``MODELS``, which cannot see this registry)."""
    cfg = dict(cfg)
    name = cfg.pop('type')
    mixer_cls = registry.get(name) if isinstance(name, str) else name
    if not inspect.isclass(mixer_cls):
        raise ValueError(f'Unknown token_mixer type {name!r}; registered: {sorted(registry.module_dict)} '
                         '(register yours with @mmext.registry.TOKEN_MIXERS.register_module())')
    return mixer_cls(in_channels, **cfg)


TOKEN_MIXERS = Registry('token mixer', parent=MODELS, scope='mmext', build_func=_build_token_mixer,
                        locations=['mmext.models.backbones.token_mixers'])

#: Modules registered when a registry first looks a name up, not at ``import mmext``: their components subclass
#: mmseg's, and importing ``mmseg.datasets`` / ``mmseg.evaluation`` costs about a second (it imports mmcv's ops).
LAZY_LOCATIONS: dict[Registry, tuple[str, ...]] = {
    DATASETS: ('mmext.datasets.ade20k',),
    TRANSFORMS: ('mmext.datasets.transforms',),
    METRICS: ('mmext.evaluation',),
}
#: Scopes whose registries learn :data:`LAZY_LOCATIONS` besides the root: mmengine's ``get`` imports only the
#: locations of the registry it is asked (the default scope's), then reads its ancestors' tables.
LAZY_SCOPES = ('mmseg', 'mmdet')


def add_lazy_locations() -> None:
    """Give :data:`LAZY_LOCATIONS` to the root registries and their :data:`LAZY_SCOPES` children (``import mmext``
    calls it). Imports ``mmseg.registry`` and ``mmdet.registry`` (a few milliseconds: no models) where installed."""
    for scope in LAZY_SCOPES:
        if importlib.util.find_spec(scope) is not None:
            importlib.import_module(f'{scope}.registry')
    for root, locations in LAZY_LOCATIONS.items():
        for registry in [root, *(root.children[scope] for scope in LAZY_SCOPES if scope in root.children)]:
            add_registry_locations(registry, list(locations))
