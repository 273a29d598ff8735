"""Per-client quotas (``server.quota``): requests per period, requests in flight and token budgets.

``config`` is the run-config section (Llama Stack 0.2.12's keys and Lamina's additions); ``middleware``
counts requests per client in the section's kvstore (so replicas sharing one store share the count)
and requests in flight per client in this process; ``token_budgets`` charges inference answers' usage
to the caller. docs/security.md explains them.
"""
