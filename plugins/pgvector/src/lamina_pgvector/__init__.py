"""remote::pgvector: Lamina's Vector IO provider on PostgreSQL with the pgvector extension."""

from lamina_pgvector.bench import open_for_bench
from lamina_pgvector.config import PGVectorVectorIOConfig

__all__ = ["PGVectorVectorIOConfig", "open_for_bench"]
