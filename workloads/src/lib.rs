//! Faultline's workloads: what clients do against the cluster, and the generators that pace them.
