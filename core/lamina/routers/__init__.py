"""Routers: implement an API by dispatching each call to the provider that owns its resource."""
