variable "bucket_name" {
  type        = string
  description = "Name of the general-purpose S3 bucket that holds the segment objects."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lower-case letters, digits, dots or dashes)."
  }
}

variable "sse_algorithm" {
  type        = string
  description = "Default server-side encryption of the bucket: aws:kms (with kms_key_arn, or the AWS-managed aws/s3 key) or AES256 (SSE-S3)."
  default     = "aws:kms"

  validation {
    condition     = contains(["aws:kms", "AES256"], var.sse_algorithm)
    error_message = "sse_algorithm must be aws:kms or AES256."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer-managed KMS key for sse_algorithm = aws:kms; null uses the AWS-managed aws/s3 key."
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "abort_incomplete_multipart_days" {
  type        = number
  description = "Days after which an incomplete multipart upload (an agent that died mid-upload) is aborted. This is the bucket's only lifecycle rule: objects are deleted by Fjord's garbage collection, never by an expiration rule."
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of days, at least 1."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete a non-empty bucket (dev clusters only)."
  default     = false
}

variable "express_availability_zone_id" {
  type        = string
  description = "Also create an S3 Express One Zone directory bucket in this availability zone ID (for example use1-az4), for low-latency writes; null creates none."
  default     = null

  validation {
    condition     = var.express_availability_zone_id == null || can(regex("^[a-z]{2,4}[0-9]-az[0-9]+$", var.express_availability_zone_id))
    error_message = "express_availability_zone_id must be an availability zone ID such as use1-az4."
  }
}

variable "express_bucket_base_name" {
  type        = string
  description = "Base name of the directory bucket; the full name is <base>--<zone id>--x-s3. Defaults to bucket_name."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
