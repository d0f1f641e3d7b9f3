from .inceptionnext import InceptionNeXt
from .inceptionnext_convert import convert_checkpoint, convert_checkpoint_to_deploy, deploy_state_dict
from .inceptionnext_isotropic import InceptionNeXtIsotropic
from .inceptionnext_weights import extract_backbone_state_dict, infer_arch, load_backbone_checkpoint
from .metanext import LayerNorm2d, MetaNeXtBackbone, MetaNeXtBlock
from .token_mixers import Attention, DWConv2d, Identity, InceptionDWConv2d, build_token_mixer

__all__ = ['Attention', 'DWConv2d', 'Identity', 'InceptionDWConv2d', 'InceptionNeXt', 'InceptionNeXtIsotropic',
           'LayerNorm2d', 'MetaNeXtBackbone', 'MetaNeXtBlock', 'build_token_mixer', 'convert_checkpoint',
           'convert_checkpoint_to_deploy', 'deploy_state_dict', 'extract_backbone_state_dict', 'infer_arch',
           'load_backbone_checkpoint']
