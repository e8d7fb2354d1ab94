"""The installable package: the wheel's contents and an install used from outside the repo.

Builds the wheel offline (``pip wheel --no-build-isolation --no-index``, so
setuptools must be in the environment: requirements-dev.txt has it) from a
copy of the source tree, installs it with ``pip install --target`` and runs the
CLI and ``memvos_jax.load()`` from a directory that is not the checkout.
"""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import CHILD_TIMEOUT_S, REPO

pytestmark = pytest.mark.slow   # builds and installs the wheel in subprocesses

CONFIGS = ('__init__', 'afb_urr', 'default', 'rpm', 'sam2', 'stcn', 'stm')
# Not copied for the build: caches, outputs, other build trees.
IGNORE = shutil.ignore_patterns('.git', '.venv', 'out', 'runs', 'build', 'dist', '*.egg-info',
                                '__pycache__', '.pytest_cache', 'workdir', '.whl', '.gl')


def _pip(*args, cwd=None):
  r = subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', *args],
                     capture_output=True, text=True, cwd=cwd, timeout=CHILD_TIMEOUT_S)
  assert r.returncode == 0, f'pip {" ".join(args)} failed:\n{r.stdout}\n{r.stderr}'
  return r


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
  """(wheel path, site folder holding the installed package, a work folder outside the repo)."""
  if importlib.util.find_spec('pip') is None:
    pytest.skip('pip is not installed in this Python environment')
  if importlib.util.find_spec('setuptools') is None:
    pytest.skip('setuptools is not installed (pip install -r requirements-dev.txt): '
                'the offline wheel build needs it')
  tmp = tmp_path_factory.mktemp('pkg')
  src = tmp / 'src'
  shutil.copytree(REPO, src, ignore=IGNORE)   # the build writes build/ and *.egg-info there
  _pip('wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', str(tmp / 'wheel'),
       str(src))
  wheels = sorted((tmp / 'wheel').glob('memvos_jax-*.whl'))
  assert len(wheels) == 1, wheels
  _pip('install', '--no-deps', '--no-index', '--target', str(tmp / 'site'), str(wheels[0]))
  work = tmp / 'work'
  work.mkdir()
  return wheels[0], tmp / 'site', work


def _run(cmd, site, work):
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['PYTHONPATH'] = str(site)
  return subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env, timeout=CHILD_TIMEOUT_S)


def test_wheel_holds_the_package_configs_and_weights_only(installed):
  wheel, _, _ = installed
  names = zipfile.ZipFile(wheel).namelist()
  for name in CONFIGS:
    assert f'memvos_jax/configs/{name}.py' in names
  assert 'memvos_jax/weights/default_stcn.npz' in names
  assert 'memvos_jax/__main__.py' in names
  tops = {n.split('/')[0] for n in names}
  assert tops == {'memvos_jax', 'memvos_jax-0.1.0.dist-info'}, tops   # no tests/, configs/, ...
  entry_points = zipfile.ZipFile(wheel).read('memvos_jax-0.1.0.dist-info/entry_points.txt')
  assert b'memvos-jax = memvos_jax.__main__:main' in entry_points


def test_installed_cli_runs_outside_the_repo(installed):
  _, site, work = installed
  r = _run([sys.executable, '-m', 'memvos_jax', 'segment', '--help'], site, work)
  assert r.returncode == 0, r.stderr
  assert '--video' in r.stdout and '--mask' in r.stdout
  script = site / 'bin' / 'memvos-jax'            # the console script
  r = _run([sys.executable, str(script), 'segment', '--help'], site, work)
  assert r.returncode == 0, r.stderr
  assert '--video' in r.stdout


def test_installed_load_uses_the_packaged_configs_and_weights(installed):
  _, site, work = installed
  code = ('import memvos_jax; from memvos_jax import configs; '
          's = memvos_jax.load(quiet=True); '
          'print(memvos_jax.__file__); print(configs.__file__); print(s.weights)')
  r = _run([sys.executable, '-c', code], site, work)
  assert r.returncode == 0, r.stderr
  package, configs, weights = (pathlib.Path(line) for line in r.stdout.strip().splitlines()[-3:])
  root = site.resolve() / 'memvos_jax'
  assert package.resolve() == root / '__init__.py', r.stdout          # not the checkout's
  assert configs.resolve() == root / 'configs' / '__init__.py', r.stdout
  assert weights.resolve() == root / 'weights' / 'default_stcn.npz', r.stdout
  assert REPO.resolve() not in package.resolve().parents
