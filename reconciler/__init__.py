"""crayon-reconciler: declarative, exactly-once licence purchasing through the Crayon API."""

__version__ = "0.1.0"
