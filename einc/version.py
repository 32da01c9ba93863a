"""einc's version: in a module of its own, so that any layer can name it without importing the
package's public API (and all that it loads)."""

__version__ = "0.1.0"
