"""Project package of crossprefetch's example: settings, URLconf and routing."""
