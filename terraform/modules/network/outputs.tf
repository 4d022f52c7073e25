output "vpc_id" {
  description = "The VPC of the cluster."
  value       = local.vpc_id
}

output "vpc_cidr" {
  description = "The CIDR block of the VPC."
  value       = local.vpc_cidr
}

output "private_subnets" {
  description = "The private subnets, one per availability zone: id, cidr_block and availability_zone."
  value       = local.private_subnets
}

output "private_route_table_ids" {
  description = "Every private route table; the S3 gateway endpoint is attached to each."
  value       = local.private_route_table_ids
}

output "s3_endpoint_id" {
  description = "The S3 gateway VPC endpoint."
  value       = aws_vpc_endpoint.s3.id
}

output "agents_security_group_id" {
  description = "The security group of the agents."
  value       = aws_security_group.agents.id
}

output "lb_security_group_id" {
  description = "The security group of the internal load balancer."
  value       = aws_security_group.lb.id
}

output "fdb_security_group_id" {
  description = "The security group of the FoundationDB hosts."
  value       = aws_security_group.fdb.id
}
