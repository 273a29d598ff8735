"""The aiohttp server: routes generated from the API declarations."""
