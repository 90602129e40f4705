"""`ferkit serve`: a REST API and a web page over one loaded model (``pip install 'ferkit[serve]'``).

`Service` holds the model and the bounds (`Limits`); `create_app(service)` is the ASGI app.
"""

from ferkit.serve.app import Service, create_app
from ferkit.serve.limits import Limits

__all__ = ["Limits", "Service", "create_app"]
