# The network of a Fjord cluster: a VPC (new, or existing subnets) over up to
# three availability zones, private subnets for agents and FoundationDB, an S3
# gateway endpoint on every private route table (segment traffic never crosses a
# NAT gateway) and the security groups of the agents, their load balancer and
# FoundationDB.

data "aws_region" "current" {}

locals {
  kafka_port = 9092
  http_port  = 8080
  fdb_port   = 4500

  zones    = var.create_vpc ? var.availability_zones : [for s in var.existing_private_subnets : s.availability_zone]
  vpc_id   = var.create_vpc ? aws_vpc.this[0].id : var.existing_vpc_id
  vpc_cidr = var.create_vpc ? var.vpc_cidr : var.existing_vpc_cidr

  nat_count = !var.create_vpc || var.nat_gateways == "none" ? 0 : (var.nat_gateways == "single" ? 1 : length(var.availability_zones))

  private_subnets = var.create_vpc ? [
    for i, zone in var.availability_zones : {
      id                = aws_subnet.private[i].id
      cidr_block        = aws_subnet.private[i].cidr_block
      availability_zone = zone
    }
    ] : [
    for s in var.existing_private_subnets : {
      id                = s.id
      cidr_block        = s.cidr_block
      availability_zone = s.availability_zone
    }
  ]

  # Every private route table: the S3 gateway endpoint is attached to each.
  private_route_table_ids = var.create_vpc ? aws_route_table.private[*].id : distinct([for s in var.existing_private_subnets : s.route_table_id])

  tags = merge(var.tags, { "fjord:cluster" = var.name })
}

resource "terraform_data" "checks" {
  input = local.zones

  lifecycle {
    precondition {
      condition     = length(local.zones) >= 1
      error_message = "Give one to three availability_zones (create_vpc = true) or existing_private_subnets (create_vpc = false)."
    }
    precondition {
      condition     = var.create_vpc || (var.existing_vpc_id != null && var.existing_vpc_cidr != null)
      error_message = "create_vpc = false needs existing_vpc_id and existing_vpc_cidr."
    }
  }
}

# --- A new VPC ------------------------------------------------------------

resource "aws_vpc" "this" {
  count = var.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.tags, { Name = var.name })
}

# The default security group of the VPC allows nothing.
resource "aws_default_security_group" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_subnet" "private" {
  count = var.create_vpc ? length(var.availability_zones) : 0

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 20 - tonumber(split("/", var.vpc_cidr)[1]), count.index)
  map_public_ip_on_launch = false

  tags = merge(local.tags, { Name = "${var.name}-private-${var.availability_zones[count.index]}", Tier = "private" })
}

# One private route table per zone, so that a zone's default route goes to its
# own NAT gateway (per_az).
resource "aws_route_table" "private" {
  count = var.create_vpc ? length(var.availability_zones) : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = "${var.name}-private-${var.availability_zones[count.index]}" })
}

resource "aws_route_table_association" "private" {
  count = var.create_vpc ? length(var.availability_zones) : 0

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

resource "aws_subnet" "public" {
  count = local.nat_count > 0 ? length(var.availability_zones) : 0

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 24 - tonumber(split("/", var.vpc_cidr)[1]), 240 + count.index)
  map_public_ip_on_launch = false

  tags = merge(local.tags, { Name = "${var.name}-public-${var.availability_zones[count.index]}", Tier = "public" })
}

resource "aws_internet_gateway" "this" {
  count = local.nat_count > 0 ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = var.name })
}

resource "aws_route_table" "public" {
  count = local.nat_count > 0 ? 1 : 0

  vpc_id = aws_vpc.this[0].id

  tags = merge(local.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  count = local.nat_count > 0 ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = local.nat_count > 0 ? length(var.availability_zones) : 0

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_eip" "nat" {
  count = local.nat_count

  domain = "vpc"

  tags = merge(local.tags, { Name = "${var.name}-nat-${count.index}" })
}

resource "aws_nat_gateway" "this" {
  count = local.nat_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = merge(local.tags, { Name = "${var.name}-nat-${count.index}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route" "private_nat" {
  count = local.nat_count > 0 ? length(var.availability_zones) : 0

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.nat_gateways == "per_az" ? count.index : 0].id
}

# --- The S3 gateway endpoint, on every private route table ----------------

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = local.vpc_id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.private_route_table_ids

  tags = merge(local.tags, { Name = "${var.name}-s3" })
}

# --- Security groups ------------------------------------------------------

resource "aws_security_group" "lb" {
  name        = "${var.name}-lb"
  description = "Fjord internal load balancer: Kafka bootstrap (9092) and HTTP/gRPC (8080) from the clients"
  vpc_id      = local.vpc_id

  tags = merge(local.tags, { Name = "${var.name}-lb" })
}

resource "aws_security_group" "agents" {
  name        = "${var.name}-agents"
  description = "Fjord agents: Kafka (9092) and HTTP/gRPC (8080) from the clients, the load balancer and each other"
  vpc_id      = local.vpc_id

  tags = merge(local.tags, { Name = "${var.name}-agents" })
}

resource "aws_security_group" "fdb" {
  name        = "${var.name}-fdb"
  description = "FoundationDB: 4500 from the agents and from FoundationDB only"
  vpc_id      = local.vpc_id

  tags = merge(local.tags, { Name = "${var.name}-fdb" })
}

locals {
  client_rules = {
    for pair in setproduct(var.allowed_client_cidrs, [local.kafka_port, local.http_port]) :
    "${pair[0]}-${pair[1]}" => { cidr = pair[0], port = pair[1] }
  }
}

resource "aws_vpc_security_group_ingress_rule" "lb_clients" {
  for_each = local.client_rules

  security_group_id = aws_security_group.lb.id
  description       = "Clients to the load balancer on ${each.value.port}"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "lb_agents" {
  for_each = toset([tostring(local.kafka_port), tostring(local.http_port)])

  security_group_id            = aws_security_group.lb.id
  description                  = "Load balancer to the agents on ${each.value} (traffic and health checks)"
  referenced_security_group_id = aws_security_group.agents.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_vpc_security_group_ingress_rule" "agents_clients" {
  for_each = local.client_rules

  security_group_id = aws_security_group.agents.id
  description       = "Clients to the agents on ${each.value.port} (advertised addresses)"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
}

resource "aws_vpc_security_group_ingress_rule" "agents_lb" {
  for_each = toset([tostring(local.kafka_port), tostring(local.http_port)])

  security_group_id            = aws_security_group.agents.id
  description                  = "Load balancer to the agents on ${each.value}"
  referenced_security_group_id = aws_security_group.lb.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_vpc_security_group_ingress_rule" "agents_self" {
  for_each = toset([tostring(local.kafka_port), tostring(local.http_port)])

  security_group_id            = aws_security_group.agents.id
  description                  = "Agents to each other on ${each.value} (gateway forwarding to partition leaders)"
  referenced_security_group_id = aws_security_group.agents.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_vpc_security_group_egress_rule" "agents_self" {
  for_each = toset([tostring(local.kafka_port), tostring(local.http_port)])

  security_group_id            = aws_security_group.agents.id
  description                  = "Agents to each other on ${each.value}"
  referenced_security_group_id = aws_security_group.agents.id
  ip_protocol                  = "tcp"
  from_port                    = tonumber(each.value)
  to_port                      = tonumber(each.value)
}

resource "aws_vpc_security_group_egress_rule" "agents_fdb" {
  security_group_id            = aws_security_group.agents.id
  description                  = "Agents to FoundationDB"
  referenced_security_group_id = aws_security_group.fdb.id
  ip_protocol                  = "tcp"
  from_port                    = local.fdb_port
  to_port                      = local.fdb_port
}

resource "aws_vpc_security_group_egress_rule" "agents_s3" {
  security_group_id = aws_security_group.agents.id
  description       = "Agents to S3 through the gateway endpoint"
  prefix_list_id    = aws_vpc_endpoint.s3.prefix_list_id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "agents_https" {
  security_group_id = aws_security_group.agents.id
  description       = "Agents to HTTPS endpoints: SSM, S3 Express zonal endpoints, release downloads at boot"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "fdb_agents" {
  security_group_id            = aws_security_group.fdb.id
  description                  = "Agents to FoundationDB"
  referenced_security_group_id = aws_security_group.agents.id
  ip_protocol                  = "tcp"
  from_port                    = local.fdb_port
  to_port                      = local.fdb_port
}

resource "aws_vpc_security_group_ingress_rule" "fdb_self" {
  security_group_id            = aws_security_group.fdb.id
  description                  = "FoundationDB processes to each other"
  referenced_security_group_id = aws_security_group.fdb.id
  ip_protocol                  = "tcp"
  from_port                    = local.fdb_port
  to_port                      = local.fdb_port
}

resource "aws_vpc_security_group_egress_rule" "fdb_self" {
  security_group_id            = aws_security_group.fdb.id
  description                  = "FoundationDB processes to each other"
  referenced_security_group_id = aws_security_group.fdb.id
  ip_protocol                  = "tcp"
  from_port                    = local.fdb_port
  to_port                      = local.fdb_port
}

resource "aws_vpc_security_group_egress_rule" "fdb_https" {
  security_group_id = aws_security_group.fdb.id
  description       = "FoundationDB hosts to HTTPS endpoints: the FoundationDB release download at boot"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}
