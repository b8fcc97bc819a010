"""moto_server, with DynamoDB requests handled one at a time.

DynamoDB applies each write to an item atomically: `SET n = n + 1` from two clients,
or a transaction racing an update, never loses a write. moto serves requests on
threads and does not lock its tables, so concurrent writes to one item can lose each
other. Serializing the DynamoDB requests (only those: an SQS long poll must not hold
up the rest) gives the emulator the guarantee the AWS backend relies on.

Usage: python scripts/emulator.py HOST PORT
"""

import sys
import threading

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

dynamodb = threading.Lock()
app = DomainDispatcherApplication(create_backend_app)


def serialized(environ, start_response):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("DynamoDB_"):
        with dynamodb:
            # The body is produced inside the lock: moto does the work lazily.
            return list(app(environ, start_response))
    return app(environ, start_response)


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
