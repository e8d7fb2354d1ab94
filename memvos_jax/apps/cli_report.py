"""How the command-line tools report bad flags, configs and warnings: one line each.

``eval.py`` and ``train.py`` parse their absl flags and ml_collections configs
with ``parse_flags`` (``app.run(main, flags_parser=cli_report.parse_flags)``):
an unknown config key, an unknown config variant, a config file that cannot
be loaded or a bad flag value is printed as ``error: <flag>: <problem>``
(exit code 2) instead of a traceback. ``one_line_warnings`` makes Python
warnings print as ``warning: <message>``.

Light: imports no JAX, so these errors come before any heavy import.
"""

import re
import sys
import warnings

from memvos_jax.errors import USAGE_EXIT


def _innermost_text(e: BaseException) -> str:
  """The message of ``e`` with KeyError quoting and exception wrapping undone."""
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
  if isinstance(e, KeyError) and text.startswith(("'", '"')) and '\n' not in text:
    text = text[1:-1] if text[-1:] == text[:1] else text
  return text


def _last_line(text: str) -> str:
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  return lines[-1] if lines else text.strip()


def _flag_naming(argv, key: str) -> str:
  """The ``--config.a.b=value`` argument whose dotted path holds ``key``."""
  for arg in argv[1:]:
    name = arg.split('=', 1)[0]
    if name.startswith('--') and key in name.lstrip('-').split('.')[1:]:
      return arg
  return f'config key {key!r}'


def config_key_problem(e: BaseException, argv) -> str:
  """One line for an unknown config key (ml_collections' KeyError/AttributeError)."""
  text = _innermost_text(e)
  first, _, rest = text.partition('\n')
  key = first.strip().strip('\'"')
  hint = re.search(r'Did you mean "([^"]+)"', rest)
  suggestion = f' (did you mean {hint.group(1)!r}?)' if hint else ''
  return f'{_flag_naming(argv, key)}: unknown config key {key!r}{suggestion}'


def flag_problem(e: BaseException, argv) -> str:
  """One line (no traceback) for any exception raised while parsing flags/configs."""
  from absl import flags
  if isinstance(e, (KeyError, AttributeError)):
    return config_key_problem(e, argv)
  text = str(e)
  if isinstance(e, flags.Error):
    head = text.split('\n', 1)[0]
    if head.startswith('flag '):
      head = head[len('flag '):]
    if 'Traceback' in text:       # an error raised inside the config file
      where = head.split(': Error whilst parsing config file', 1)[0]
      return f'{where}: {_strip_type(_last_line(text))}'
    return head
  if isinstance(e, OSError) and 'Failed loading config file' in text:
    path = _config_arg(argv)
    return f'{path}: cannot load the config file: {_last_line(text)}'
  return f'{_config_arg(argv)}: {type(e).__name__}: {_last_line(text)}'


def _strip_type(line: str) -> str:
  """'ValueError: configs/x.py: unknown variant' -> 'configs/x.py: unknown variant'."""
  m = re.match(r'^[A-Za-z_][\w.]*(Error|Exception): (.*)$', line)
  return m.group(2) if m else line


def _config_arg(argv) -> str:
  """The (last, effective) ``--config=...`` argument."""
  found = '--config'
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith('--config='):
      found = arg
    elif arg == '--config' and i + 1 < len(argv):
      found = f'--config={argv[i + 1]}'
  return found


def fail(message: str, code: int = USAGE_EXIT):
  """Print ``error: message`` (one line) and exit with ``code``."""
  print(f'error: {" ".join(message.split())}', file=sys.stderr)
  sys.exit(code)


def parse_flags(argv):
  """absl ``flags_parser``: parse ``argv``; on any problem print one line and exit 2."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # flags.Error, ml_collections' KeyError/OSError/ValueError
    fail(flag_problem(e, argv))


def config_value(config_flag, argv=None):
  """``config_flag.value``; a config file that failed to load is reported in one line.

  (ml_collections defers the error of an unreadable config file to the first
  access of the value.)
  """
  try:
    value = config_flag.value
    value.keys()   # a config file that failed to load raises on first use
    return value
  except Exception as e:
    fail(flag_problem(e, argv or sys.argv))


def _one_line(message, category, filename, lineno, line=None):
  del category, filename, lineno, line
  return f'warning: {" ".join(str(message).split())}\n'


def _show(message, category, filename, lineno, file=None, line=None):
  """Print a warning in one line, on its own line even while a progress bar is drawn."""
  import tqdm
  text = _one_line(message, category, filename, lineno, line)
  tqdm.tqdm.write(text.rstrip('\n'), file=file or sys.stderr)


def one_line_warnings() -> None:
  """Python warnings print as ``warning: <message>`` (no source line)."""
  warnings.formatwarning = _one_line
  warnings.showwarning = _show
