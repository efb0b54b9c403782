"""The rules, as pure functions: no I/O, no Kubernetes client, no HTTP.

names (Kubernetes name syntax) -> agents (GitHub App -> agent) -> workspace (which PVC) ;
facts (where a run's service and app are) ; labels, pvc (what is written) ; patch (the JSON patch).
"""
