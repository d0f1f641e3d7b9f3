from .inceptionnext import InceptionNeXt
from .inceptionnext_convert import convert_checkpoint, convert_checkpoint_to_deploy, deploy_state_dict
from .inceptionnext_weights import extract_backbone_state_dict, infer_arch, load_backbone_checkpoint
from .token_mixers import InceptionDWConv2d

__all__ = ['InceptionDWConv2d', 'InceptionNeXt', 'convert_checkpoint', 'convert_checkpoint_to_deploy',
           'deploy_state_dict', 'extract_backbone_state_dict', 'infer_arch', 'load_backbone_checkpoint']
