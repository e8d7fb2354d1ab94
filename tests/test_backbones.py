"""Backbones from ImageNet classification checkpoints (torchvision layout), strictly.

The converted ImageNet classifiers must name the right class on real DAVIS frames
(needs ../shared: the weights and the frames); a torchvision-layout ResNet-50
state_dict, written here from the architecture's definition, loads strictly into
STCN's key encoder; wrong, missing and mis-shaped tensors are one-line errors.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from memvos_jax.convert import imagenet
from memvos_jax.convert.common import torch_to_flax
from memvos_jax.convert.torch_pickle import load_state_dict
from memvos_jax.errors import CheckpointError, InputError
from memvos_jax.nn import backbones
from memvos_jax.models.stcn import STCN

SHARED = pathlib.Path(__file__).resolve().parents[2] / 'shared'
WEIGHTS = SHARED / 'weights' / 'imagenet'
FRAMES = SHARED / 'data' / 'davis2016_train' / 'JPEGImages' / '480p'
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
# DAVIS clip -> ImageNet classes that are right for its first frame.
EXPECTED = {'bear': {294},                 # brown bear
            'flamingo': {130},             # flamingo
            'boat': {814, 576, 625, 724},  # speedboat, gondola, lifeboat, pirate ship
            'elephant': {385, 386, 101}}   # Indian / African elephant, tusker


def _center_crop(seq):
  """torchvision's eval transform: shorter side 256, centre crop 224, ImageNet norm."""
  with Image.open(FRAMES / seq / '00000.jpg') as im:
    im = im.convert('RGB')
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
  return ((np.asarray(im) / 255.0 - MEAN) / STD).astype(np.float32)


@pytest.mark.skipif(not (WEIGHTS.is_dir() and FRAMES.is_dir()),
                    reason='needs ../shared/weights/imagenet and ../shared/data/davis2016_train')
@pytest.mark.parametrize('arch,file', [
    ('mobilenet_v2', 'mobilenet_v2-b0353104.pth'),             # legacy torch.save format
    ('efficientnet_lite0', 'efficientnet-lite0-57934424.pth'),  # 50 strided tensors
])
def test_imagenet_classifier_top5(arch, file):
  x = jnp.asarray(np.stack([_center_crop(s) for s in EXPECTED]))
  model = backbones.build(arch, head=True)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x[:1])
  variables = torch_to_flax(load_state_dict(WEIGHTS / file), shapes, source=file)  # strict
  top5 = np.argsort(-np.asarray(jax.jit(model.apply)(variables, x)), axis=1)[:, :5]
  for (seq, right), row in zip(EXPECTED.items(), top5):
    assert right & set(row.tolist()), f'{arch} {seq}: top-5 {row.tolist()}'


@pytest.mark.skipif(not WEIGHTS.is_dir(), reason='needs ../shared/weights/imagenet')
@pytest.mark.parametrize('arch,file', [
    ('mobilenet_v2', 'mobilenet_v2-b0353104.pth'),
    ('efficientnet_lite0', 'efficientnet-lite0-57934424.pth'),
])
@pytest.mark.slow   # over 10 s on 2 cores: outside the quick suite
@pytest.mark.fast_compile   # names, shapes and placement of the weights
def test_backbone_loads_without_its_head(arch, file):
  """As a backbone the classifier head is dropped by name, the rest fills every variable."""
  model = backbones.build(arch)
  # jitted: op by op, the depthwise convolutions' shifted slices dispatch ~3x slower
  current = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 5)))   # 2 mask chans
  loaded = imagenet.load_backbone(str(WEIGHTS / file), arch, current)
  f16, f8, f4 = jax.eval_shape(model.apply, loaded, jnp.zeros((1, 64, 96, 5)))
  assert (f16.shape[-1], f8.shape[-1], f4.shape[-1]) == backbones.feature_dims(arch)
  assert f16.shape[1:3] == (4, 6) and f8.shape[1:3] == (8, 12) and f4.shape[1:3] == (16, 24)
  first = backbones.SPECS[arch].first_conv.rpartition('.')[0].replace('.', '_')
  kernel = np.asarray(loaded['params'][first]['kernel'])
  file_w = load_state_dict(WEIGHTS / file)[backbones.SPECS[arch].first_conv]
  np.testing.assert_array_equal(kernel[:, :, :3], file_w.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(kernel[:, :, 3:],   # the mask channels keep their init
                                np.asarray(current['params'][first]['kernel'])[:, :, 3:])


def _torchvision_resnet50():
  """torchvision ``resnet50().state_dict()`` names and shapes, from the architecture."""
  rng = np.random.default_rng(0)
  sd = {}

  def conv(name, o, i, k):
    sd[f'{name}.weight'] = rng.normal(0, 0.05, (o, i, k, k)).astype(np.float32)

  def bn(name, c):
    sd[f'{name}.weight'] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f'{name}.bias'] = rng.normal(0, 0.1, c).astype(np.float32)
    sd[f'{name}.running_mean'] = rng.normal(0, 0.1, c).astype(np.float32)
    sd[f'{name}.running_var'] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f'{name}.num_batches_tracked'] = np.array(0, np.int64)

  conv('conv1', 64, 3, 7)
  bn('bn1', 64)
  cin = 64
  for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), 1):
    for b in range(blocks):
      p = f'layer{layer}.{b}'
      conv(f'{p}.conv1', planes, cin, 1)
      bn(f'{p}.bn1', planes)
      conv(f'{p}.conv2', planes, planes, 3)
      bn(f'{p}.bn2', planes)
      conv(f'{p}.conv3', planes * 4, planes, 1)
      bn(f'{p}.bn3', planes * 4)
      if b == 0:
        conv(f'{p}.downsample.0', planes * 4, cin, 1)
        bn(f'{p}.downsample.1', planes * 4)
      cin = planes * 4
  sd['fc.weight'] = rng.normal(0, 0.01, (1000, 2048)).astype(np.float32)
  sd['fc.bias'] = np.zeros(1000, np.float32)
  return sd


def _stcn_key_encoder_vars():
  model = STCN()    # official sizes: ResNet-50 keys
  image, masks = jnp.zeros((1, 64, 64, 3)), jnp.zeros((1, 64, 64))
  shapes = jax.eval_shape(model.init, jax.random.key(0), image, masks)
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes['params']['key']['key_encoder']), \
      jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes['batch_stats']['key']['key_encoder'])


def test_torchvision_resnet50_loads_strictly_into_stcn_key_encoder(tmp_path):
  sd = _torchvision_resnet50()
  path = tmp_path / 'resnet50.npz'
  np.savez(path, **sd)
  params, stats = _stcn_key_encoder_vars()
  loaded = imagenet.load_backbone(str(path), 'resnet50', {'params': params, 'batch_stats': stats})
  np.testing.assert_array_equal(loaded['params']['layer2_0']['downsample_0']['kernel'],
                                sd['layer2.0.downsample.0.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(loaded['batch_stats']['layer3_5']['bn3']['var'],
                                sd['layer3.5.bn3.running_var'])
  # Every variable of the key encoder came from the file.
  n_file = sum(v.size for k, v in sd.items()
               if not k.startswith(('layer4.', 'fc.')) and 'num_batches' not in k)
  assert sum(v.size for v in jax.tree.leaves(loaded)) == n_file


@pytest.mark.parametrize('change,words', [
    (lambda sd: sd.pop('layer3.2.bn2.running_var'), ['missing', 'layer3.2.bn2.running_var']),
    (lambda sd: sd.__setitem__('layer1.0.conv9.weight', np.zeros((64, 64, 1, 1), np.float32)),
     ['unexpected', 'layer1.0.conv9.weight']),
    (lambda sd: sd.__setitem__('layer2.1.conv2.weight', np.zeros((128, 128, 1, 1), np.float32)),
     ['mis-shaped', 'layer2.1.conv2.weight']),
])
def test_bad_backbone_file_is_one_line(tmp_path, change, words):
  sd = _torchvision_resnet50()
  change(sd)
  path = tmp_path / 'bad_resnet50.npz'
  np.savez(path, **sd)
  params, stats = _stcn_key_encoder_vars()
  with pytest.raises(CheckpointError) as e:
    imagenet.load_backbone(str(path), 'resnet50', {'params': params, 'batch_stats': stats})
  msg = str(e.value)
  assert '\n' not in msg and str(path) in msg
  for w in words:
    assert w in msg


def test_backbone_init_spec():
  encoders = STCN.encoders
  assert imagenet.parse('', encoders) == {}
  assert imagenet.parse('a.pth', encoders) == {'key': 'a.pth', 'value': 'a.pth'}
  assert imagenet.parse('key=a.pth', encoders) == {'key': 'a.pth'}
  assert imagenet.parse('key=a.pth,value=b.pth', encoders) == {'key': 'a.pth', 'value': 'b.pth'}
  with pytest.raises(InputError, match='backbone_init'):
    imagenet.parse('query=a.pth', encoders)
