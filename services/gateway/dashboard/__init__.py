"""The insights dashboard: embeddable, per tenant and subtenant, for sales managers.

- ``routes``: the partner's token API and the dashboard's pages, data endpoints and assets;
- ``handlers``: plain functions behind them (tokens, sessions, filters, page data);
- ``projector``: the dashboard's own consumer of the pipeline's events (per-call rows and
  aggregates, each call counted exactly once);
- ``repository``: all its SQL; ``facts``: what an event says about a call;
- ``runtime``: what the gateway's lifespan starts for it; ``static/``: the front end.
"""
