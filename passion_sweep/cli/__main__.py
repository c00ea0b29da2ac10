"""``python -m passion_sweep.cli``: the ``passion-sweep`` command, e.g. as a Ray job's entrypoint."""

from passion_sweep.cli import main

main(prog_name="passion-sweep")
