output "bootstrap_address" {
  description = "Kafka bootstrap address (the internal load balancer, port 9092)."
  value       = "${aws_lb.this.dns_name}:${local.kafka_port}"
}

output "gateway_url" {
  description = "URL of the HTTP/gRPC gateway (the internal load balancer, port 8080)."
  value       = "http://${aws_lb.this.dns_name}:${local.http_port}"
}

output "load_balancer_arn" {
  description = "ARN of the internal network load balancer."
  value       = aws_lb.this.arn
}

output "serve_group_names" {
  description = "The serving agents' auto-scaling groups, by availability zone."
  value       = { for az, group in aws_autoscaling_group.serve : az => group.name }
}

output "jobs_group_name" {
  description = "The jobs agents' auto-scaling group."
  value       = aws_autoscaling_group.jobs.name
}

output "jobs_launch_template_user_data" {
  description = "The jobs agents' boot script (base64), as their launch template holds it: to inspect what an instance runs at boot."
  value       = aws_launch_template.jobs.user_data
}
