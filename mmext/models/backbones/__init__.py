from .inceptionnext import InceptionNeXt, LayerNorm2d, MetaNeXtBlock
from .inceptionnext_convert import convert_checkpoint, convert_checkpoint_to_deploy, deploy_state_dict
from .inceptionnext_isotropic import InceptionNeXtIsotropic
from .inceptionnext_weights import extract_backbone_state_dict, infer_arch, load_backbone_checkpoint
from .token_mixers import TOKEN_MIXERS, Attention, DWConv2d, Identity, InceptionDWConv2d, build_token_mixer

__all__ = ['TOKEN_MIXERS', 'Attention', 'DWConv2d', 'Identity', 'InceptionDWConv2d', 'InceptionNeXt',
           'InceptionNeXtIsotropic', 'LayerNorm2d', 'MetaNeXtBlock', 'build_token_mixer', 'convert_checkpoint',
           'convert_checkpoint_to_deploy', 'deploy_state_dict', 'extract_backbone_state_dict', 'infer_arch',
           'load_backbone_checkpoint']
