import sys

try:
    from .cli import main

    sys.exit(main())
except KeyboardInterrupt:
    # A Ctrl-C while the modules load, or a second one while the first is being handled: one
    # sentence and the shell's code for SIGINT, never a traceback or a silent death by signal.
    print("convscope: interrupted.", file=sys.stderr)
    sys.exit(130)
