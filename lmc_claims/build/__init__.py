"""The build layer: jobs as plain values, the code that computes their payloads, the worker side,
the executor protocol and its local and Dask executors. It never imports the workbench, the plan
or the session.
"""
