output "cluster_file" {
  description = "The content of the FoundationDB cluster file (description:id@ip:4500,...)."
  value       = local.cluster_file
}

output "cluster_file_parameter_name" {
  description = "Name of the SSM parameter holding the cluster file."
  value       = aws_ssm_parameter.cluster_file.name
}

output "cluster_file_parameter_arn" {
  description = "ARN of the SSM parameter holding the cluster file."
  value       = aws_ssm_parameter.cluster_file.arn
}

output "coordinators" {
  description = "The coordinators' addresses."
  value       = local.coordinators
}

output "slots" {
  description = "Every slot: data hall, availability zone and fixed IP."
  value       = { for k, s in local.slots : k => { availability_zone = s.availability_zone, ip = s.ip, coordinator = s.coordinator } }
}
