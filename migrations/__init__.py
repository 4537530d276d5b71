"""The node database's alembic history, installed with bcx as package data.

``exchange.migrate`` finds this directory through ``importlib.resources`` and configures
alembic in code; the ``alembic.ini`` beside the checkout is only for developers' own
``alembic`` commands (``make lint`` runs ``alembic upgrade head`` and ``alembic check``).
"""
