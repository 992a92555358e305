import signal
import sys

code = 130
try:
    from .cli import main

    code = main()
except KeyboardInterrupt:
    # A Ctrl-C while the modules load, or a second one while the first is being handled: one
    # sentence and the shell's code for SIGINT, never a traceback.
    print("convscope: interrupted.", file=sys.stderr)
finally:
    # The interpreter's shutdown puts SIGINT back to the default action, so a Ctrl-C that lands
    # there (50 ms after a first one that ended training cleanly) killed the process with -2 and no
    # word; once the command has finished, a late Ctrl-C is ignored instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
