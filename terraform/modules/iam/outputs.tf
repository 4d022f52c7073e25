output "serve_role_name" {
  description = "The role of the serving agents."
  value       = aws_iam_role.serve.name
}

output "serve_instance_profile_name" {
  description = "The instance profile of the serving agents."
  value       = aws_iam_instance_profile.serve.name
}

output "jobs_role_name" {
  description = "The role of the jobs agents."
  value       = aws_iam_role.jobs.name
}

output "jobs_instance_profile_name" {
  description = "The instance profile of the jobs agents."
  value       = aws_iam_instance_profile.jobs.name
}
