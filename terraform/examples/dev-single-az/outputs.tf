output "bootstrap_address" {
  description = "Kafka bootstrap address (bootstrap.servers) of the internal load balancer."
  value       = module.agents.bootstrap_address
}

output "gateway_url" {
  description = "URL of the HTTP/gRPC gateway."
  value       = module.agents.gateway_url
}

output "bucket_name" {
  description = "The segment bucket."
  value       = module.bucket.bucket_name
}

output "cluster_file_parameter_name" {
  description = "SSM parameter holding the FoundationDB cluster file."
  value       = module.fdb.cluster_file_parameter_name
}
