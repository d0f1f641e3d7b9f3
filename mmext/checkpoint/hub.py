"""``hf-hub:<repo>[@<revision>]`` checkpoint names: timm's convention for weights on the Hugging Face hub.

``hf-hub:timm/inception_next_tiny.sail_in1k`` is what ``timm.create_model('inception_next_tiny.sail_in1k',
pretrained=True)`` downloads. The file is fetched through ``huggingface_hub`` into its cache (``HF_HUB_CACHE``,
by default ``~/.cache/huggingface/hub``) or, with ``HF_HUB_OFFLINE=1`` or no connection, taken from that cache;
``model.safetensors`` is preferred over ``pytorch_model.bin``, as timm does.
"""
from __future__ import annotations

from .errors import CheckpointError

HF_HUB_PREFIX = 'hf-hub:'
#: Weight files looked for in a hub repository, in order of preference.
HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def resolve_hf_hub(name: str) -> str:
    """The local path of the weights that ``hf-hub:<repo>[@<revision>]`` names, downloading them if needed."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    repo_id, _, revision = name.removeprefix(HF_HUB_PREFIX).partition('@')
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise CheckpointError(f'{name}: expected hf-hub:<owner>/<repo>[@<revision>], e.g. '
                              'hf-hub:timm/inception_next_tiny.sail_in1k')
    absent = []
    for filename in HF_WEIGHT_FILES:
        try:
            return hf_hub_download(repo_id, filename, revision=revision or None)
        except (EntryNotFoundError, LocalEntryNotFoundError) as e:  # not in the repo, or not in the offline cache
            absent.append(f'{filename} ({type(e).__name__})')
        except RepositoryNotFoundError:
            raise CheckpointError(f'{name}: the Hugging Face hub has no repository {repo_id!r} (or it is '
                                  'private)') from None
    offline = ' with HF_HUB_OFFLINE=1' if constants.is_offline_mode() else ''
    cli = hf_cli()
    raise CheckpointError(f'{name}: found none of {", ".join(absent)} in {repo_id}{offline} (cache: '
                          f'{constants.HF_HUB_CACHE}). Online, run once `{cli} download {repo_id} '
                          f'{HF_WEIGHT_FILES[0]}`; or pass a local path or URL instead')


def hf_cli() -> str:
    """The command-line tool the installed ``huggingface_hub`` provides: ``hf`` (0.34 and later), else the older
    ``huggingface-cli``."""
    import importlib.util

    return 'hf' if importlib.util.find_spec('huggingface_hub.cli.hf') is not None else 'huggingface-cli'
