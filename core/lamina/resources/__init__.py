"""Resources: the persisted registry and the routing tables that map identifiers to providers."""
