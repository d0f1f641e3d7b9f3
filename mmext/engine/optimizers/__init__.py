from .layer_decay_optim_wrapper_constructor import (
    InceptionNeXtLayerDecayOptimizerConstructor,
    LayerDecayOptimWrapperConstructor,
)

__all__ = ['InceptionNeXtLayerDecayOptimizerConstructor', 'LayerDecayOptimWrapperConstructor']
