"""mmext.checkpoint.weights_only: mmengine's checkpoint values through a ``weights_only=True`` load."""
import io
import pickle
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmext.checkpoint import from_weights_only, to_weights_only


def test_weights_only_encoding_round_trips_mmengine_values():
    buffer = HistoryBuffer([0.5, 0.25], [1, 2], max_length=7)
    Point = namedtuple('Point', 'x y')
    state_dict = OrderedDict(w=torch.ones(2))
    state_dict._metadata = OrderedDict({'': {'version': 2}})
    value = {'scalars': {'loss': buffer}, 'eta': np.float64(1.5), 'n': np.int64(3), 'flag': np.bool_(True),
             'palette': np.array([[1, 2, 3]], dtype=np.uint8), 'names': np.array(['a', 'bc']),
             'objects': np.array([None, np.float32(2)], dtype=object), 'fs': frozenset({1, 2}),
             'point': Point(1, 2), 'classes': ('a', 'b'), 'state_dict': state_dict, 'plain': [1, 'x', None]}
    encoded = to_weights_only(value)
    assert encoded['state_dict'] is state_dict  # untouched containers are not copied
    assert isinstance(encoded['eta'], dict) and isinstance(value['eta'], np.float64)  # input not mutated
    buffer_file = io.BytesIO()
    torch.save(encoded, buffer_file)
    buffer_file.seek(0)
    decoded = from_weights_only(torch.load(buffer_file, weights_only=True))
    restored = decoded['scalars']['loss']
    assert isinstance(restored, HistoryBuffer) and restored.max_length == 7
    assert restored.data[0].tolist() == [0.5, 0.25] and restored.data[1].dtype == buffer.data[1].dtype
    assert type(decoded['eta']) is np.float64 and decoded['eta'] == 1.5
    assert type(decoded['n']) is np.int64 and type(decoded['flag']) is np.bool_
    for key in ('palette', 'names', 'objects'):
        assert decoded[key].dtype == value[key].dtype and decoded[key].tolist() == value[key].tolist()
    assert decoded['fs'] == frozenset({1, 2}) and decoded['point'] == (1, 2) and decoded['classes'] == ('a', 'b')
    assert decoded['state_dict']._metadata == {'': {'version': 2}}
    assert pickle.dumps(decoded['palette']) == pickle.dumps(value['palette'])

    with pytest.raises(TypeError, match=r'meta\.bad: a .*object cannot be stored in a weights_only checkpoint'):
        to_weights_only({'meta': {'bad': object()}}, 'checkpoint')
    with pytest.raises(TypeError, match=r'key np\.float64\(1\.0\) of type float64'):  # np.float64 subclasses float
        to_weights_only({np.float64(1.0): 'x'})


@pytest.mark.gpu
def test_weights_only_decoding_after_loading_onto_the_gpu(tmp_path):
    # Runner.resume loads with map_location=get_device(): encoded arrays arrive as CUDA tensors
    path = tmp_path / 'iter_1.pth'
    torch.save(to_weights_only({'loss': HistoryBuffer([0.5, 0.25], [1, 1]), 'eta': np.float64(2.0)}), path)
    decoded = from_weights_only(torch.load(path, map_location='cuda', weights_only=True))
    assert decoded['loss'].data[0].tolist() == [0.5, 0.25] and type(decoded['eta']) is np.float64
