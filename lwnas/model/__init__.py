"""What a network is: the architecture spec, the block library, the builder, the analytic cost counter and the
named paper configs."""
