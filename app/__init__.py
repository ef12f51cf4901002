"""The application layer: the sovtel command line, the demo and query; thin over the library's jobs."""
