output "bucket_name" {
  description = "The name of the segment bucket."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "The ARN of the segment bucket."
  value       = aws_s3_bucket.this.arn
}

output "express_bucket_name" {
  description = "The name of the S3 Express directory bucket, or null."
  value       = one(aws_s3_directory_bucket.express[*].bucket)
}

output "express_bucket_arn" {
  description = "The ARN of the S3 Express directory bucket, or null."
  value       = one(aws_s3_directory_bucket.express[*].arn)
}
