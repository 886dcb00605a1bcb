"""server_script.py - the start of the Python servers that the tests and the
benchmarks run as helper processes (`python3 -c SCRIPT`): the descriptor
limit raised to its hard limit, for thousands of connections, and one
listener on 127.0.0.1, any port, with a long accept queue. It reads nothing
from the test environment, so that tests/bench/follow_bench.py can use it
on its own.
"""

import textwrap

# Leaves `listener` listening; imports json, os, resource, socket and sys.
LISTENER_SETUP = textwrap.dedent("""
    import json, os, resource, socket, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
""")
