# Two least-privilege roles: serving agents read and write segment objects
# under the prefix but cannot delete any; jobs agents (retention, garbage
# collection) can also delete. Every action is named and every resource is an
# ARN: no "*" action or resource.

locals {
  objects_arn = "${var.bucket_arn}/${var.prefix}/*"
}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    sid     = "Ec2AssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "serve" {
  statement {
    sid    = "SegmentObjectsReadWrite"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.objects_arn]
  }

  statement {
    sid       = "ListUnderPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.prefix, "${var.prefix}/*"]
    }
  }

  statement {
    sid       = "ReadClusterFile"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [var.cluster_file_parameter_arn]
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [var.kms_key_arn]
    content {
      sid       = "BucketKey"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.express_bucket_arn == null ? [] : [var.express_bucket_arn]
    content {
      sid       = "ExpressSessions"
      effect    = "Allow"
      actions   = ["s3express:CreateSession"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "jobs" {
  # Everything a serving agent may do ...
  source_policy_documents = [data.aws_iam_policy_document.serve.json]

  # ... and delete objects under the prefix (retention, garbage collection).
  statement {
    sid       = "SegmentObjectsDelete"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = [local.objects_arn]
  }
}

resource "aws_iam_role" "serve" {
  name                 = "${var.name}-serve"
  description          = "Fjord serving agents: read and write segment objects, no delete"
  assume_role_policy   = data.aws_iam_policy_document.assume_ec2.json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "serve" {
  name   = "${var.name}-serve"
  role   = aws_iam_role.serve.id
  policy = data.aws_iam_policy_document.serve.json
}

resource "aws_iam_instance_profile" "serve" {
  name = "${var.name}-serve"
  role = aws_iam_role.serve.name

  tags = var.tags
}

resource "aws_iam_role" "jobs" {
  name                 = "${var.name}-jobs"
  description          = "Fjord jobs agents: retention and garbage collection, which delete segment objects"
  assume_role_policy   = data.aws_iam_policy_document.assume_ec2.json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "jobs" {
  name   = "${var.name}-jobs"
  role   = aws_iam_role.jobs.id
  policy = data.aws_iam_policy_document.jobs.json
}

resource "aws_iam_instance_profile" "jobs" {
  name = "${var.name}-jobs"
  role = aws_iam_role.jobs.name

  tags = var.tags
}
